"""kbroker.storage: the segmented, crash-safe partition log. Pure: no sockets, no threads."""
