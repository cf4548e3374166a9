"""Export tier (imports as dcgan_rt.export): ONNX (fp32, fp16, uint8 variants),
TensorRT engines, and the parity checks that vouch for them. Imports torch and
onnx; tensorrt only lazily."""
