"""The Python `jira` package, unchanged, pointed at cache_serve.

Usage: jira_client.py URL TOKEN ISSUE_KEY online|offline

Prints one JSON object: what the client read. `online` also runs a JQL
search (search always goes to the site); `offline` runs with the site
stopped, so every read must come from the cache.
"""

import json
import sys

from jira import JIRA

url, token, issue_key, mode = sys.argv[1:5]
client = JIRA(server=url, token_auth=token, max_retries=0, timeout=20)
projects = sorted(p.key for p in client.projects())
fields = sorted(f["id"] for f in client.fields())
issue = client.issue(issue_key)
out = {
    "projects": projects,
    "fields": fields,
    "issue": {"key": issue.key, "summary": issue.fields.summary},
}
if mode == "online":
    found = client.search_issues(f"project = {issue_key.split('-')[0]}", maxResults=5)
    out["search"] = [i.key for i in found]
print(json.dumps(out))
