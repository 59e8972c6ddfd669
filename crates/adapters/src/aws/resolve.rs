//! Looking resources up by name: queue URLs and ARNs, topic ARNs.

use anyhow::{Context as _, anyhow};
use aws_sdk_sqs::types::QueueAttributeName;

/// The URL of the queue called `name`, or `None` when there is no such queue.
///
/// # Errors
/// Any other SQS failure.
pub async fn find_queue_url(
    sqs: &aws_sdk_sqs::Client,
    name: &str,
) -> anyhow::Result<Option<String>> {
    match sqs.get_queue_url().queue_name(name).send().await {
        Ok(out) => Ok(out.queue_url().map(str::to_owned)),
        Err(e)
            if e.as_service_error().is_some_and(
                aws_sdk_sqs::operation::get_queue_url::GetQueueUrlError::is_queue_does_not_exist,
            ) =>
        {
            Ok(None)
        }
        Err(e) => Err(anyhow::Error::new(e).context(format!("looking up SQS queue {name}"))),
    }
}

/// The URL of the queue called `name` (GetQueueUrl).
///
/// # Errors
/// When the queue does not exist (provision it first) or SQS fails.
pub async fn queue_url(sqs: &aws_sdk_sqs::Client, name: &str) -> anyhow::Result<String> {
    find_queue_url(sqs, name).await?.ok_or_else(|| {
        anyhow!("SQS queue {name} does not exist; run `cita-worker provision` first")
    })
}

/// The ARN of the queue at `url`.
///
/// # Errors
/// Any SQS failure, or an answer without the ARN.
pub async fn queue_arn(sqs: &aws_sdk_sqs::Client, url: &str) -> anyhow::Result<String> {
    let out = sqs
        .get_queue_attributes()
        .queue_url(url)
        .attribute_names(QueueAttributeName::QueueArn)
        .send()
        .await
        .with_context(|| format!("reading the ARN of SQS queue {url}"))?;
    out.attributes()
        .and_then(|a| a.get(&QueueAttributeName::QueueArn))
        .cloned()
        .ok_or_else(|| anyhow!("SQS returned no ARN for queue {url}"))
}

/// The ARN of the SNS topic called `name`, or `None` when there is none.
/// SNS has no lookup by name, so this lists the account's topics (an ARN
/// ends with `:{name}`).
///
/// # Errors
/// Any SNS failure.
pub async fn find_topic_arn(
    sns: &aws_sdk_sns::Client,
    name: &str,
) -> anyhow::Result<Option<String>> {
    let suffix = format!(":{name}");
    let mut next: Option<String> = None;
    loop {
        let page = sns
            .list_topics()
            .set_next_token(next.take())
            .send()
            .await
            .context("listing SNS topics")?;
        if let Some(arn) = page
            .topics()
            .iter()
            .filter_map(|t| t.topic_arn())
            .find(|arn| arn.ends_with(&suffix))
        {
            return Ok(Some(arn.to_owned()));
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next = Some(token.to_owned()),
            _ => return Ok(None),
        }
    }
}

/// The ARN of the SNS topic called `name`.
///
/// # Errors
/// When the topic does not exist (provision it first) or SNS fails.
pub async fn topic_arn(sns: &aws_sdk_sns::Client, name: &str) -> anyhow::Result<String> {
    find_topic_arn(sns, name).await?.ok_or_else(|| {
        anyhow!("SNS topic {name} does not exist; run `cita-worker provision` first")
    })
}
