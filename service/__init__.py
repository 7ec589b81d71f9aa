"""attnserve: the server, its client commands and its load tool."""

from importlib import metadata


def version() -> str:
    """The installed package's version (`attnserve --version`, KServe ServerMetadata)."""
    try:
        return metadata.version("attnserve")
    except metadata.PackageNotFoundError:  # running from a source tree that is not installed
        return "0+unknown"
