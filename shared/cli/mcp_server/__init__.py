"""`expd mcp`: the MCP server (tools mirroring the CLI, resources, instructions). Only the `mcp`
command imports this package."""
