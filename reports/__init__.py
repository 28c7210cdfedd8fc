"""Report builders (HTML, figures) that read a run folder's saved records."""
