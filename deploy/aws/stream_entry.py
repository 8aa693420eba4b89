"""EMR Serverless entry point of the stream job (uploaded next to the packed venv; see docs/deploy-aws.md).

tweetdesk itself comes from the packed venv; the settings from the TWEETDESK_* variables the job run sets.
"""

from tweetdesk.config import Settings
from tweetdesk.stream.job import stream_command

stream_command(Settings())
