"""booking-saga: process wiring (settings, embedded servers, CLI) around the api/workflows/activities/services."""
