"""Running it: the command line, crawl processes, the scheduler daemon, status and metrics."""
