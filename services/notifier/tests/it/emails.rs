//! What people receive for a run: the email (through the stack's SMTP server, read back from its
//! Maildir) and the notification on `notify.<env>`.

use crate::support::*;

#[tokio::test]
async fn a_successful_run_is_emailed_and_published() {
    let stores = stores().await;
    let env = unique_env("notify");
    let (smtp_url, maildir) = stack_smtp();
    let notifier = start(&vars(&env, &smtp_url));
    let event = loaded(&env, "run_success");
    publish_loaded(&stores, &event, 1).await;

    let mut notify = NotifyReader::open(&stores, &env).await;
    let n = notify.next().await;
    assert_eq!(n["status"], "succeeded");
    assert_eq!(n["run_id"], "run_success");
    assert_eq!(n["inserted"], 1);
    assert_eq!(n["revised"], 3);
    assert_eq!(n["corrections"].as_array().unwrap().len(), 3);
    assert_eq!(n["dropped"]["only_nyt"], 2);
    assert_eq!(n["duration_ms"], 2400);
    assert_eq!(n["email"], "pending", "published before the email is sent");
    assert_eq!(
        n["subject"],
        format!("[{env}] COVID-19 data updated: 1 new day, 3 revised")
    );
    let report = notify.next().await;
    assert_eq!(report["report"], "email");
    assert_eq!(report["about"], "run_success");
    assert_eq!(report["email"], "sent");
    assert_eq!(report["recipients"], 2);
    assert_eq!(report["subject"], n["subject"]);

    let mails = wait_for_mails(&maildir, &env, 1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail.subject,
        format!("[{env}] COVID-19 data updated: 1 new day, 3 revised")
    );
    assert!(
        mail.to.contains("ops@example.com") && mail.to.contains("oncall@example.com"),
        "{}",
        mail.to
    );
    assert!(mail.from.contains("covid-etl@example.com"), "{}", mail.from);
    assert_eq!(
        mail.text.trim_end(),
        n["text"].as_str().unwrap().trim_end(),
        "the notification's text is the email's"
    );
    for (label, value) in [
        ("new days", "1"),
        ("revised", "3"),
        ("updated", "4"),
        ("unchanged", "1,150"),
        ("removed", "0"),
        ("only in NYT", "2 (2020-01-21, 2020-01-20)"),
        ("only in JHU", "none"),
    ] {
        mail.assert_fact(label, value);
    }
    for line in [
        "2023-03-20 deaths: 1,000,000 → 1,000,100",
        "new_cases is negative on 2023-03-21 (-12): an upstream correction",
        "took 2.4 s",
        "committed 2023-03-23 14:05 UTC",
    ] {
        mail.assert_line(line);
    }
    assert!(mail.text.contains("nyt: nytimes/covid-19-data us.csv at 1a2b3c4 (https://github.com/nytimes/covid-19-data/commit/1a2b3c4d5e6f708192a3)"));
    assert!(mail.html.contains(
        "<a href=\"https://github.com/datasets/covid-19/commit/9f8e7d6c5b4a39281706\">9f8e7d6</a>"
    ));
    assert!(
        mail.html
            .contains("<a href=\"http://dashboard.test:8080\">")
    );
    assert!(mail.text.contains("Dashboard: http://dashboard.test:8080"));

    notifier.stop().await;
    remove_mails(&mails);
    clean_up(&env).await;
}

#[tokio::test]
async fn a_keyed_datasets_run_is_published_and_emailed_under_its_name() {
    let stores = stores().await;
    let env = unique_env("notify");
    let (smtp_url, maildir) = stack_smtp();
    let notifier = start(&vars(&env, &smtp_url));
    publish_loaded(&stores, &counties_loaded(&env, "run_counties"), 1).await;

    let subject = format!(
        "[{env}] COVID-19 counties data updated: 3,250 new rows, 25 revised, 2 rows removed"
    );
    let mut notify = NotifyReader::open(&stores, &env).await;
    let n = notify.next().await;
    assert_eq!(n["dataset"], "counties");
    assert_eq!(n["status"], "succeeded");
    assert_eq!(n["run_id"], "run_counties");
    assert_eq!(n["subject"], subject);
    assert_eq!(n["inserted"], 3_250);
    assert_eq!(n["corrections"][0]["key"], "Harris, Texas");
    assert_eq!(n["email"], "pending");
    let report = notify.next().await;
    assert_eq!(
        (&report["about"], &report["email"]),
        (&"run_counties".into(), &"sent".into())
    );

    let mails = wait_for_mails(&maildir, &env, 1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.subject, subject);
    assert_eq!(
        mail.text.trim_end(),
        n["text"].as_str().unwrap().trim_end(),
        "the notification's text is the email's"
    );
    for (label, value) in [
        ("dataset", "counties"),
        ("new rows", "3,250"),
        ("revised values", "31 (in 25 rows)"),
        ("removed rows", "2"),
    ] {
        mail.assert_fact(label, value);
    }
    // The largest revision first, with its key; HTML collapses the text's double spaces.
    assert!(
        mail.text
            .contains("  - Harris, Texas  2020-04-28  cases 10 → 2,512\n"),
        "{}",
        mail.text
    );
    assert!(
        mail.html_visible()
            .contains("Harris, Texas 2020-04-28 cases 10 → 2,512")
    );
    for line in [
        "and 11 more",
        "us-counties: nytimes/covid-19-data us-counties.csv at 5e6f708",
    ] {
        mail.assert_line(line);
    }

    notifier.stop().await;
    remove_mails(&mails);
    clean_up(&env).await;
}

#[tokio::test]
async fn a_failed_run_is_emailed_with_stage_reason_and_inputs() {
    let stores = stores().await;
    let env = unique_env("notify");
    let (smtp_url, maildir) = stack_smtp();
    let notifier = start(&vars(&env, &smtp_url));
    let event = failed(&env, "run_failed");
    publish_failed(&stores, &event).await;

    let mut notify = NotifyReader::open(&stores, &env).await;
    let n = notify.next().await;
    assert_eq!(n["status"], "failed");
    assert_eq!(n["stage"], "transform");
    assert_eq!(n["kind"], "invalid_data");
    assert_eq!(n["reason"], "nyt line 57: deaths is not a number (`12x`)");
    assert_eq!(n["inputs"].as_array().unwrap().len(), 1);
    assert_eq!(n["email"], "pending");
    let report = notify.next().await;
    assert_eq!(
        (&report["about"], &report["email"]),
        (&n["run_id"], &"sent".into())
    );

    let mails = wait_for_mails(&maildir, &env, 1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(
        mail.subject,
        format!(
            "[{env}] COVID-19 ETL failed at transform: nyt line 57: deaths is not a number (`12x`)"
        )
    );
    mail.assert_fact("stage", "transform");
    mail.assert_fact("reason", "nyt line 57: deaths is not a number (`12x`)");
    mail.assert_fact("kind", "invalid_data");
    mail.assert_line("The stored data was left unchanged");
    mail.assert_line("nyt: nytimes/covid-19-data us.csv at 1a2b3c4");

    notifier.stop().await;
    remove_mails(&mails);
    clean_up(&env).await;
}

#[tokio::test]
async fn a_run_that_changed_nothing_is_emailed_when_the_policy_says_so() {
    let stores = stores().await;
    let env = unique_env("notify");
    let (smtp_url, maildir) = stack_smtp();
    let mut vars = vars(&env, &smtp_url);
    vars.set("NOTIFY_UNCHANGED", "email");
    let notifier = start(&vars);
    publish_loaded(&stores, &unchanged(&env, "run_same"), 1).await;

    let mut notify = NotifyReader::open(&stores, &env).await;
    let n = notify.next().await;
    assert_eq!(n["status"], "succeeded");
    assert_eq!(n["inserted"], 0);
    assert_eq!(n["email"], "pending");
    assert_eq!(notify.next().await["email"], "sent");
    let mails = wait_for_mails(&maildir, &env, 1).await;
    assert_eq!(mails.len(), 1);
    let mail = &mails[0];
    assert_eq!(mail.subject, format!("[{env}] COVID-19 data unchanged"));
    mail.assert_line("is unchanged: this run found nothing new upstream");
    mail.assert_fact("new days", "0");
    mail.assert_fact("unchanged", "1,155");

    notifier.stop().await;
    remove_mails(&mails);
    clean_up(&env).await;
}

#[tokio::test]
async fn by_default_a_run_that_changed_nothing_is_only_published() {
    let stores = stores().await;
    let env = unique_env("notify");
    let (smtp_url, maildir) = stack_smtp();
    let notifier = start(&vars(&env, &smtp_url));
    publish_loaded(&stores, &unchanged(&env, "run_same"), 1).await;
    publish_loaded(&stores, &loaded(&env, "run_after"), 1).await;

    let mut notify = NotifyReader::open(&stores, &env).await;
    let first = notify.next().await;
    assert_eq!(first["subject"], format!("[{env}] COVID-19 data unchanged"));
    assert_eq!(first["email"], "skipped");
    assert!(
        first["email_note"]
            .as_str()
            .unwrap()
            .contains("NOTIFY_UNCHANGED=nats")
    );
    // No report follows a skipped email: next is the other run, then its email's report.
    let after = notify.next().await;
    assert_eq!(
        (&after["run_id"], &after["email"]),
        (&"run_after".into(), &"pending".into())
    );
    let report = notify.next().await;
    assert_eq!(
        (&report["about"], &report["email"]),
        (&"run_after".into(), &"sent".into())
    );
    // Events are handled in order, so had the unchanged run been emailed, its email would be
    // there by now: the other run's is the only one.
    let mails = wait_for_mails(&maildir, &env, 1).await;
    assert_eq!(mails.len(), 1);
    assert!(mails[0].subject.contains("updated"));

    notifier.stop().await;
    remove_mails(&mails);
    clean_up(&env).await;
}

#[tokio::test]
async fn an_env_without_recipients_is_published_but_not_emailed() {
    let stores = stores().await;
    let env = unique_env("notify");
    let (smtp_url, maildir) = stack_smtp();
    let mut vars = vars(&env, &smtp_url);
    vars.set(format!("EMAIL_TO_{}", env.as_str().to_uppercase()), "");
    vars.set("EMAIL_TO", "prod-only@example.com");
    let notifier = start(&vars);
    publish_loaded(&stores, &loaded(&env, "run_quiet"), 1).await;

    let n = NotifyReader::open(&stores, &env).await.next().await;
    assert_eq!(n["email"], "skipped");
    assert!(
        n.get("email_note").is_none(),
        "nothing to explain when nobody is configured"
    );
    assert!(
        n["text"].as_str().unwrap().contains("new days: 1"),
        "the text is the email it would have been"
    );
    wait_all_acknowledged(&stores, &env).await;
    assert_eq!(notify_count(&stores, &env).await, 1, "no report follows");
    assert!(mails(&maildir, &env).is_empty());

    notifier.stop().await;
    clean_up(&env).await;
}
