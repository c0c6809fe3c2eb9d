"""What answers the proxy's calls: the user's aiohttp app, a command we run, or a URL."""
