"""Alert receiver standing in for Slack and PagerDuty: stores and shows every Alertmanager notification."""
