"""attnserve's exporter: a local Hugging Face folder → an attnserve model directory.

The serving side never imports this package (it needs torch and transformers); run it once,
from `attnserve export`, `python -m export` or a build step.
"""
