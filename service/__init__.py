"""REST search service over the one search pipeline (``retriever serve``)."""
