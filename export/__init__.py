"""movinet-export: streaming MoViNet (A0-A5) to TFLite with explicit states.

The workstation half: TensorFlow and tf-models-official live here and only here.
"""

__version__ = "0.1.0"
