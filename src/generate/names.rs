//! Property names that look like a real HubSpot portal: HubSpot's own contact properties
//! (the busiest analytics, email and lifecycle ones first), then portal-specific custom ones.

/// Real HubSpot contact properties, roughly busiest first.
pub const HUBSPOT: &[&str] = &[
    "hs_analytics_num_page_views",
    "hs_analytics_num_visits",
    "hs_email_open",
    "hs_email_delivered",
    "hs_analytics_last_timestamp",
    "hs_email_click",
    "hs_analytics_num_event_completions",
    "hs_email_last_open_date",
    "hs_email_last_send_date",
    "hs_analytics_last_visit_timestamp",
    "hs_email_sends_since_last_engagement",
    "hs_analytics_last_url",
    "hs_email_last_email_name",
    "hs_latest_source_timestamp",
    "lastmodifieddate",
    "hs_last_sales_activity_timestamp",
    "hs_email_last_click_date",
    "hs_analytics_average_page_views",
    "hubspotscore",
    "hs_predictivecontactscore_v2",
    "lifecyclestage",
    "hs_lead_status",
    "notes_last_updated",
    "num_contacted_notes",
    "hs_sales_email_last_opened",
    "recent_conversion_date",
    "recent_conversion_event_name",
    "num_conversion_events",
    "num_unique_conversion_events",
    "hs_calculated_form_submissions",
    "hs_time_in_lead",
    "hs_time_in_subscriber",
    "hs_time_in_opportunity",
    "hs_time_in_customer",
    "hs_email_bounce",
    "hs_social_last_engagement",
    "hs_ip_timezone",
    "ip_city",
    "ip_country",
    "ip_state",
    "hubspot_owner_id",
    "hs_all_owner_ids",
    "hs_user_ids_of_all_owners",
    "hs_all_team_ids",
    "email",
    "firstname",
    "lastname",
    "phone",
    "mobilephone",
    "company",
    "jobtitle",
    "city",
    "state",
    "country",
    "zip",
    "address",
    "website",
    "industry",
    "annualrevenue",
    "numemployees",
    "hs_persona",
    "hs_language",
    "hs_marketable_status",
    "hs_marketable_reason_type",
    "hs_email_optout",
    "hs_calculated_merged_vids",
    "hs_all_contact_vids",
    "hs_is_contact",
    "hs_is_unworked",
    "hs_email_domain",
    "hs_searchable_calculated_phone_number",
    "hs_legal_basis",
    "hs_buying_role",
    "hs_pipeline",
    "hs_sequences_is_enrolled",
    "hs_sequences_enrolled_count",
    "hs_document_last_revisited",
    "hs_facebook_click_id",
    "hs_google_click_id",
    "message",
    "salutation",
    "twitterhandle",
    "linkedinbio",
    "hs_linkedinid",
    "date_of_birth",
    "gender",
    "degree",
    "school",
    "field_of_study",
    "seniority",
    "marital_status",
    "work_email",
    "hs_whatsapp_phone_number",
    "fax",
    "closedate",
    "days_to_close",
    "hs_content_membership_status",
    "hs_registered_member",
    "hs_conversations_visitor_email",
    "engagements_last_meeting_booked",
    "hs_latest_meeting_activity",
    "hs_time_to_first_engagement",
    "first_deal_created_date",
    "hs_first_outreach_date",
    "hs_latest_sequence_enrolled",
    "hs_analytics_first_timestamp",
    "hs_analytics_first_visit_timestamp",
    "hs_analytics_first_referrer",
    "hs_analytics_last_referrer",
    "hs_analytics_source",
    "hs_analytics_source_data_1",
    "hs_analytics_source_data_2",
    "hs_analytics_first_url",
    "hs_latest_source",
    "hs_latest_source_data_1",
    "first_conversion_date",
    "first_conversion_event_name",
    "hs_lifecyclestage_lead_date",
    "hs_lifecyclestage_subscriber_date",
    "hs_lifecyclestage_customer_date",
    "hs_lifecyclestage_opportunity_date",
    "hs_lifecyclestage_marketingqualifiedlead_date",
    "hs_lifecyclestage_salesqualifiedlead_date",
    "createdate",
    "hs_object_id",
    "hs_createdate",
    "associatedcompanyid",
    "num_associated_deals",
    "total_revenue",
    "hs_predictivescoringtier",
    "hs_social_num_broadcast_clicks",
    "notes_last_contacted",
    "num_notes",
    "hs_sales_email_last_clicked",
    "hs_sales_email_last_replied",
];

const TEAMS: &[&str] = &[
    "crm", "mkt", "sales", "cs", "ops", "legacy", "partner", "product", "billing", "event",
];
const SUBJECTS: &[&str] = &[
    "region",
    "segment",
    "tier",
    "plan",
    "renewal",
    "trial",
    "webinar",
    "campaign",
    "referral",
    "nps",
    "churn_risk",
    "onboarding",
    "contract",
    "territory",
    "persona",
    "account_manager",
    "discount",
    "invoice",
    "usage",
    "seat_count",
    "integration",
    "survey",
    "consent",
    "source_detail",
];
const QUALIFIERS: &[&str] = &[
    "", "_date", "_status", "_score", "_code", "_2023", "_2024", "_q3", "_notes", "_flag",
];

/// `n` distinct names: HubSpot's first, then `<team>_<subject><qualifier>` custom ones, then
/// numbered ones once those run out.
pub fn property_names(n: usize) -> Vec<String> {
    let mut names: Vec<String> = HUBSPOT.iter().take(n).map(|s| s.to_string()).collect();
    'outer: for q in QUALIFIERS {
        for s in SUBJECTS {
            for t in TEAMS {
                if names.len() >= n {
                    break 'outer;
                }
                names.push(format!("{t}_{s}{q}"));
            }
        }
    }
    let mut i = 0;
    while names.len() < n {
        names.push(format!("custom_property_{i:05}"));
        i += 1;
    }
    names
}

#[cfg(test)]
mod tests {
    #[test]
    fn names_are_distinct_at_any_count() {
        for n in [0, 1, 20, 1280, 5000] {
            let names = super::property_names(n);
            let set: std::collections::HashSet<_> = names.iter().collect();
            assert_eq!((names.len(), set.len()), (n, n));
        }
    }
}
