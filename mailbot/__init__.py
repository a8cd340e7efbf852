"""mailbot: email auto-response and macro engine for customer-support teams."""

__version__ = "0.1.0"
