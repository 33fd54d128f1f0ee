"""InterCode-SQL: Spider questions answered by querying a real MariaDB server; InterCode's reward."""
