"""HTTP API, WebRTC signalling, WebSocket events and the web client."""
