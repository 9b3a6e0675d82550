"""jamnet node: live musical collaboration over WebRTC, one asyncio process."""

__version__ = "0.1.0"
