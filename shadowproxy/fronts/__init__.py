"""How clients reach the proxy: Streamable HTTP (with its fast connection path), stdio, WebSocket and legacy SSE."""
