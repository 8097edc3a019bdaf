"""Pure helpers with no side effects on the database or the sockets."""
