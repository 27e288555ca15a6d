"""Text encoders: sentence-transformers (torch) and ONNX Runtime models, the ONNX export of torch models,
linear query maps applied to query vectors, and the ONNX cross-encoder that reranks."""
