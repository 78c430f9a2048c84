"""The local three-region lab: PostgreSQL clusters, the WAN proxy, and (later) Redis, the app and moto."""
