"""Bundled sample data: the demo tickets, general replay data and the forgetting benchmark."""
