"""The Scrapy side: the add-on (the composition root), run bookkeeping, items, spider base."""
