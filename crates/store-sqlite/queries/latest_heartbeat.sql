SELECT MAX(heartbeat_at) FROM jobs WHERE component = ?1
