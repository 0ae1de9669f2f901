"""The sensing data plane: the MQTT broker, the bridge from MQTT to the observations tables, the simulator."""
