"""newsarchive: scheduled scraping and archiving of news sites."""

__version__ = "0.1.0"
