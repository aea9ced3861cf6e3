"""movinet-edge: a TensorFlow-free streaming runtime for MoViNet TFLite models.

The device half of the product. It imports only numpy, OpenCV and a TFLite
interpreter (ai-edge-litert or tflite-runtime); everything the export half
knows about a model reaches this side through ``manifest.json``.
"""

__version__ = "0.1.0"
