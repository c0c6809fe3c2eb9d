"""The local serving stack: TLS proxy, upstreams (app, command, URL), reloading."""
