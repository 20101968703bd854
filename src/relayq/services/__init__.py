"""Services: the broker's behaviour, free of HTTP. Routes call these; these call the database."""
