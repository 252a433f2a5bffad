"""HTTP routes: thin handlers that call the stages of the event's path in order."""
