"""Load generation against any attnserve target: closed and open loop, sweeps, reports."""
