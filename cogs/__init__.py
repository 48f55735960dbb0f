"""Discord cogs, one per feature; `bot.EXTENSIONS` lists the ones loaded."""
