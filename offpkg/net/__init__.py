"""The one network layer: sessions, index pages, the page cache, downloads and the content cache."""
