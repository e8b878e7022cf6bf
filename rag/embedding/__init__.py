"""Embedding: text to L2-normalised float32 vectors, on torch, ONNX Runtime or OpenVINO; the
runtimes' names and choice, and the local export of the bundled weights to each of them."""
