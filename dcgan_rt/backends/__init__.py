"""Inference backends (core tier): torch, ONNX Runtime, TensorRT behind one small interface."""
