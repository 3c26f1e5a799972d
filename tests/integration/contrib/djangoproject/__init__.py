"""A minimal Django project (settings, urls, views) for the Django integration tests."""
