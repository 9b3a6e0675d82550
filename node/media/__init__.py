"""aiortc glue: inbound RTP into our jitter buffers, outbound personal mixes."""
