#!/usr/bin/env python3
"""Writes the sample histories under history/samples/ (format: history/README.md).

Deterministic (seeded); re-run after changing the format and commit the output:

    python3 scripts/make-sample-histories.py history/samples

- contacts-zipf/: 7 nightly runs of 200,000 contacts x 1,280 properties, ~28 M version rows;
  the top 20 properties hold ~90 % of the rows, the 1,260 others share the rest. Properties
  come and go as in a real portal: 3 custom properties appear on the 6th night, one is
  deleted after the 4th.
- uniform/: 3 runs of 300 properties of about equal volume.
- one-half.json: one file holding an array of 2 runs of 64 properties, one of which holds
  half of all rows.
"""

import json
import random
import sys
from pathlib import Path

# Real HubSpot contact properties, the busiest (analytics, email, lifecycle) first.
HUBSPOT = """
hs_analytics_num_page_views hs_analytics_num_visits hs_email_open hs_email_delivered
hs_analytics_last_timestamp hs_email_click hs_analytics_num_event_completions
hs_email_last_open_date hs_email_last_send_date hs_analytics_last_visit_timestamp
hs_email_sends_since_last_engagement hs_analytics_last_url hs_email_last_email_name
hs_latest_source_timestamp lastmodifieddate hs_last_sales_activity_timestamp
hs_email_last_click_date hs_analytics_average_page_views hubspotscore
hs_predictivecontactscore_v2 lifecyclestage hs_lead_status notes_last_updated
num_contacted_notes hs_sales_email_last_opened recent_conversion_date
recent_conversion_event_name num_conversion_events num_unique_conversion_events
hs_calculated_form_submissions hs_time_in_lead hs_time_in_subscriber hs_time_in_opportunity
hs_time_in_customer hs_email_bounce hs_social_last_engagement hs_ip_timezone ip_city
ip_country ip_state hubspot_owner_id hs_all_owner_ids hs_user_ids_of_all_owners
hs_all_team_ids email firstname lastname phone mobilephone company jobtitle city state
country zip address website industry annualrevenue numemployees hs_persona hs_language
hs_marketable_status hs_marketable_reason_type hs_email_optout hs_calculated_merged_vids
hs_all_contact_vids hs_is_contact hs_is_unworked hs_email_domain
hs_searchable_calculated_phone_number hs_legal_basis hs_buying_role hs_pipeline
hs_sequences_is_enrolled hs_sequences_enrolled_count hs_document_last_revisited
hs_facebook_click_id hs_google_click_id message salutation twitterhandle linkedinbio
hs_linkedinid date_of_birth gender degree school field_of_study seniority marital_status
work_email hs_whatsapp_phone_number fax closedate days_to_close hs_content_membership_status
hs_registered_member hs_conversations_visitor_email engagements_last_meeting_booked
hs_latest_meeting_activity hs_time_to_first_engagement first_deal_created_date
hs_first_outreach_date hs_latest_sequence_enrolled hs_analytics_first_timestamp
hs_analytics_first_visit_timestamp hs_analytics_first_referrer hs_analytics_last_referrer
hs_analytics_source hs_analytics_source_data_1 hs_analytics_source_data_2
hs_analytics_first_url hs_latest_source hs_latest_source_data_1 first_conversion_date
first_conversion_event_name hs_lifecyclestage_lead_date hs_lifecyclestage_subscriber_date
hs_lifecyclestage_customer_date hs_lifecyclestage_opportunity_date
hs_lifecyclestage_marketingqualifiedlead_date hs_lifecyclestage_salesqualifiedlead_date
createdate hs_object_id hs_createdate associatedcompanyid num_associated_deals
total_revenue hs_predictivescoringtier hs_social_num_broadcast_clicks notes_last_contacted
num_notes hs_sales_email_last_clicked hs_sales_email_last_replied
""".split()

# Portal-specific custom properties: team prefix + subject + qualifier.
PREFIXES = ["crm", "mkt", "sales", "cs", "ops", "legacy", "partner", "product", "billing", "event"]
SUBJECTS = ["region", "segment", "tier", "plan", "renewal", "trial", "webinar", "campaign",
            "referral", "nps", "churn_risk", "onboarding", "contract", "territory", "persona",
            "account_manager", "discount", "invoice", "usage", "seat_count", "integration",
            "survey", "consent", "source_detail"]
QUALIFIERS = ["", "_date", "_status", "_score", "_code", "_2023", "_2024", "_q3", "_notes", "_flag"]

SEED = 20261121
OBJECTS = 200_000
TOTAL_ROWS = 28_000_000
BYTES_PER_ROW = 9.2  # ZSTD Parquet, measured order of magnitude for this data


def property_names(n):
    names = list(HUBSPOT[:n])
    custom = [f"{p}_{s}{q}" for s in SUBJECTS for q in QUALIFIERS for p in PREFIXES]
    random.Random(SEED).shuffle(custom)
    for c in custom:
        if len(names) == n:
            break
        if c not in names:
            names.append(c)
    assert len(names) == n
    return names


def zipf(n, s):
    w = [k ** -s for k in range(1, n + 1)]
    t = sum(w)
    return [x / t for x in w]


def run_record(run_id, started_at, volumes, rng, reducers=8):
    total_rows = sum(v["rows"] for v in volumes.values())
    total_bytes = sum(v["bytes"] for v in volumes.values())
    reducer_rows = [total_rows // reducers] * reducers
    reducer_rows[-1] += total_rows - sum(reducer_rows)
    reds = []
    for rows in reducer_rows:
        jitter = rng.uniform(0.97, 1.03)
        reds.append({
            "rows": rows,
            "bytes": int(total_bytes / reducers * jitter),
            "wall_ms": int(rows / 1_500_000 * 1000 * jitter),
        })
    return {
        "schema_version": 1,
        "run_id": run_id,
        "started_at": started_at,
        "dataset": "contacts",
        "properties": dict(sorted(volumes.items())),
        "reducers": reds,
    }


def dumps(run):
    """One property or reducer per line: readable, and diffs stay small."""
    lines = ["{"]
    for key in ("schema_version", "run_id", "started_at", "dataset"):
        lines.append(f"  {json.dumps(key)}: {json.dumps(run[key])},")
    props = [f"    {json.dumps(k)}: {json.dumps(v)}" for k, v in run["properties"].items()]
    lines.append('  "properties": {')
    lines.append(",\n".join(props))
    lines.append("  },")
    lines.append('  "reducers": [')
    lines.append(",\n".join(f"    {json.dumps(r)}" for r in run["reducers"]))
    lines.append("  ]")
    lines.append("}")
    return "\n".join(lines) + "\n"


def volume(rows, rng, objects_cap=OBJECTS):
    versions_per_object = rng.uniform(1.2, 6.0)
    return {
        "rows": rows,
        "bytes": int(rows * BYTES_PER_ROW * rng.uniform(0.6, 1.8)),
        "objects": min(objects_cap, max(1 if rows else 0, int(rows / versions_per_object))),
    }


def contacts_zipf(out):
    rng = random.Random(SEED)
    names = property_names(1280)
    shares = [0.9 * w for w in zipf(20, 0.7)] + [0.1 * w for w in zipf(1260, 1.2)]
    deleted = {names[700]: 4}
    base = {n: s for n, s in zip(names, shares)}
    # Three properties created on night 6 (index 5) join with fresh volumes.
    extra = ["mkt_ai_lead_score", "sales_meeting_link_v2", "cs_health_index_2026"]
    out.mkdir(parents=True, exist_ok=True)
    for day in range(7):
        growth = 1 + 0.003 * day
        volumes = {}
        for n in names:
            if n in deleted and day >= deleted[n]:
                continue
            rows = int(base[n] * TOTAL_ROWS * growth * rng.uniform(0.97, 1.03))
            volumes[n] = volume(rows, rng)
        if day >= 5:
            for i, n in enumerate(extra):
                volumes[n] = volume(40_000 * (i + 1) * (day - 4), rng)
        date = f"2026-11-{14 + day:02d}"
        run_id = f"{date.replace('-', '')}T020000Z-{rng.randrange(16**4):04x}"
        run = run_record(run_id, f"{date}T02:00:{rng.randrange(60):02d}Z", volumes, rng)
        (out / f"{run_id}.json").write_text(dumps(run))


def uniform(out):
    rng = random.Random(SEED + 1)
    names = property_names(300)
    out.mkdir(parents=True, exist_ok=True)
    for day in range(3):
        volumes = {n: volume(int(50_000 * rng.uniform(0.95, 1.05)), rng) for n in names}
        date = f"2026-11-{18 + day:02d}"
        run_id = f"{date.replace('-', '')}T020000Z-{rng.randrange(16**4):04x}"
        run = run_record(run_id, f"{date}T02:00:00Z", volumes, rng, reducers=4)
        (out / f"{run_id}.json").write_text(dumps(run))


def one_half(path):
    rng = random.Random(SEED + 2)
    names = property_names(64)
    runs = []
    for day in range(2):
        rest = zipf(63, 1.0)
        volumes = {names[0]: volume(int(2_000_000 * rng.uniform(0.98, 1.02)), rng)}
        for n, s in zip(names[1:], rest):
            volumes[n] = volume(int(2_000_000 * s * rng.uniform(0.95, 1.05)), rng)
        date = f"2026-11-{19 + day:02d}"
        run_id = f"{date.replace('-', '')}T020000Z-{rng.randrange(16**4):04x}"
        runs.append(run_record(run_id, f"{date}T02:00:00+00:00", volumes, rng, reducers=2))
    path.write_text("[\n" + ",\n".join(dumps(r).rstrip("\n") for r in runs) + "\n]\n")


def main():
    root = Path(sys.argv[1] if len(sys.argv) > 1 else "history/samples")
    for d in ("contacts-zipf", "uniform"):
        for f in (root / d).glob("*.json"):
            f.unlink()
    contacts_zipf(root / "contacts-zipf")
    uniform(root / "uniform")
    one_half(root / "one-half.json")


if __name__ == "__main__":
    main()
