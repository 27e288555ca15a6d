"""REST search service over the one Retriever (``retriever serve``)."""
