//! Lambda mode: `vigil lambda` is an AWS Lambda function (a custom runtime)
//! for SQS events, on the same detection path as `vigil serve`'s `sqs` source:
//! each record of the batch is read as the source reads a message (S3
//! notifications, SNS envelopes, EventBridge events), its findings committed,
//! and the records that failed are returned as `batchItemFailures`, so that
//! Lambda deletes the others and only the failed ones come back (the event
//! source mapping must have `ReportBatchItemFailures` on).
//!
//! What Lambda cannot keep: an execution environment lives minutes to hours
//! and several run side by side, so correlation windows and learned baselines
//! hold only what one environment saw since its cold start. The store is in
//! `data_dir` (`VIGIL_DATA_DIR`, default `/tmp/vigil`): on local storage it is
//! per environment, so the findings leave Lambda through the configured
//! `[[outputs]]`; record identities and finding folding are then per
//! environment too. The ECS service (`vigil serve`) keeps all of it.

use std::sync::Arc;
use std::time::Instant;

use crate::service::ServeConfig;
use crate::sources::sqs::worker::{s3_client, Reader, Stats};
use crate::{Pipeline, PipelineError};
use aws_lambda_events::event::sqs::{BatchItemFailure, SqsBatchResponse, SqsEvent};
use lambda_runtime::{service_fn, LambdaEvent};

/// Handles one SQS event: every record read, the failed ones returned.
pub async fn handle(reader: &Reader, event: SqsEvent) -> SqsBatchResponse {
    let mut response = SqsBatchResponse::default();
    for record in event.records {
        let id = record.message_id.clone().unwrap_or_default();
        let received = record
            .attributes
            .get("ApproximateReceiveCount")
            .and_then(|c| c.parse().ok())
            .unwrap_or(1);
        let body = record.body.unwrap_or_default();
        if let Err(f) = reader.process(&body, &id).await {
            reader.failed(&f, &id, received);
            let mut failure = BatchItemFailure::default();
            failure.item_identifier = id;
            response.batch_item_failures.push(failure);
        }
    }
    response
}

/// Runs the function until the Lambda runtime stops it: the pipeline is
/// started once per execution environment (the cold start), then each
/// invocation is handled on it.
pub fn run(mut config: ServeConfig) -> Result<(), PipelineError> {
    let started = Instant::now();
    if std::env::var_os("VIGIL_DATA_DIR").is_none()
        && config.data_dir == ServeConfig::default().data_dir
    {
        config.data_dir = "/tmp/vigil".into();
    }
    let data_dir = config.data_dir.clone();
    let crate::service::Core {
        store,
        detect,
        outputs,
        outbox,
        ..
    } = crate::service::core(&config)?;
    let running = Pipeline::new(detect, outputs).start(Vec::new(), store.clone())?;
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| PipelineError::Io("starting the runtime".into(), e))?;
    let (_keep_delivering, delivering) = tokio::sync::watch::channel(false);
    let served = rt.block_on(async {
        // Deliveries go while the environment runs (between invocations Lambda
        // freezes it; what is left goes on at the next one).
        if let Some(o) = outbox {
            o.start(Arc::new(delivering));
        }
        let settings = vigil_aws::AwsSettings {
            endpoint_url: config.aws.endpoint_url.clone(),
            home_region: config
                .aws
                .home_region
                .clone()
                .or_else(|| std::env::var("AWS_REGION").ok()),
            ..Default::default()
        };
        let base = vigil_aws::sdk_config(&settings).await;
        let reader = Arc::new(Reader {
            s3: s3_client(&base, settings.endpoint_url.is_some()),
            inlet: running.inlet(),
            source: Arc::from("lambda"),
            stats: Arc::new(Stats::default()),
            label: "lambda".into(),
        });
        tracing::info!(
            init_ms = started.elapsed().as_millis() as u64,
            data_dir = ?data_dir,
            "lambda: ready for SQS events"
        );
        lambda_runtime::run(service_fn(move |event: LambdaEvent<SqsEvent>| {
            let reader = Arc::clone(&reader);
            async move { Ok::<_, lambda_runtime::Error>(handle(&reader, event.payload).await) }
        }))
        .await
    });
    running.stop();
    served.map_err(|e| PipelineError::Config(format!("the Lambda runtime: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The event Lambda hands a function for an SQS trigger, as AWS documents
    /// it: the shapes `handle` reads.
    #[test]
    fn the_documented_event_and_response_shapes_are_read_and_written() {
        let event: SqsEvent = serde_json::from_value(serde_json::json!({"Records": [{
            "messageId": "059f36b4-87a3-44ab-83d2-661975830a7d",
            "receiptHandle": "AQEBwJnKyrHigUMZj6rYigCgxlaS3SLy0a...",
            "body": "{\"Service\":\"Amazon S3\",\"Event\":\"s3:TestEvent\"}",
            "attributes": {
                "ApproximateReceiveCount": "2",
                "SentTimestamp": "1545082649183",
                "SenderId": "AIDAIENQZJOLO23YVJ4VO",
                "ApproximateFirstReceiveTimestamp": "1545082649185"
            },
            "messageAttributes": {},
            "md5OfBody": "e4e68fb7bd0e697a0ae8f1bb342846b3",
            "eventSource": "aws:sqs",
            "eventSourceARN": "arn:aws:sqs:us-east-2:123456789012:my-queue",
            "awsRegion": "us-east-2"
        }]}))
        .unwrap();
        assert_eq!(event.records.len(), 1);
        assert_eq!(event.records[0].attributes["ApproximateReceiveCount"], "2");
        let mut r = SqsBatchResponse::default();
        let mut f = BatchItemFailure::default();
        f.item_identifier = "059f36b4".into();
        r.batch_item_failures.push(f);
        assert_eq!(
            serde_json::to_value(&r).unwrap(),
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "059f36b4"}]})
        );
    }
}
