"""The network sinks' tests use the service tests' real parts: a mosquitto broker and an MQTT subscriber."""

from service.conftest import broker, make_broker, subscribe  # noqa: F401  (fixtures, used by name)
