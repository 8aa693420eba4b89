"""The service's HTTP surface, on the app ``tweetdesk.app.create_app`` builds: the JSON API (``api.py``,
documented by ``openapi.py``), the dashboard, tracking and agent pages (``views.py``, figures from
``queries.py`` shared through ``summary_cache.py``), the one key check and agent sign-in (``auth.py``,
``sessions.py``, ``throttle.py``) and the security headers (``security.py``). ``context.py`` holds what a
request reaches (settings, store, budget, poster).
"""
