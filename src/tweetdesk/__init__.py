"""tweetdesk: customer tweets in, tracked support tickets out."""

__version__ = "0.1.0"
