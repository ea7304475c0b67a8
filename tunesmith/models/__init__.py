"""Model resolution (embedded, local folder, hub id), loading and hardware-aware precision."""
