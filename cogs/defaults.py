"""The defaults of the Discord side's numbers that are also settings, in a module that imports nothing.

`cogs.pacing.DiscordBudget` takes its defaults from here, and so does `runpod_bot/settings.py`: each default is
written once, and reading the settings loads neither discord.py nor the cogs.
"""

# DiscordBudget (cogs/pacing.py): DISCORD_CHANNEL_REQUESTS, DISCORD_CHANNEL_WINDOW_S, DISCORD_REQUESTS_PER_S.
# Discord lets a bot edit about 5 messages per 5 s in one channel, and create about 5 (each its own bucket): one
# request fewer leaves room for a request of another process or a clock that disagrees.
DEFAULT_CHANNEL_REQUESTS = 4
DEFAULT_CHANNEL_WINDOW_S = 5.0
# Discord's global limit is 50 requests per second per bot, for all its processes; the notifier keeps 10 of them
# free for what the commands send (cards, followups) in the same second.
DEFAULT_REQUESTS_PER_S = 40
