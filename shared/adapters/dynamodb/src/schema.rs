//! Table creation with the indexes and TTL `template.yaml` declares (tests, benchmarks and a local
//! DynamoDB-compatible server; in AWS the template creates the table).

use crate::DynamoStore;
use crate::error::{classify, permanent};
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, KeySchemaElement, KeyType, Projection, ProjectionType,
    ScalarAttributeType, TimeToLiveSpecification,
};
use optisync_ports::StoreError;

impl DynamoStore {
    /// Creates the table with its indexes and TTL, as `template.yaml` does (tests and benchmarks).
    pub async fn create_table(&self) -> Result<(), StoreError> {
        let attr = |name: &str| {
            AttributeDefinition::builder().attribute_name(name).attribute_type(ScalarAttributeType::S).build()
        };
        let key = |name: &str, kind: KeyType| KeySchemaElement::builder().attribute_name(name).key_type(kind).build();
        let index = |name: &str, pk: &str, sk: &str| {
            GlobalSecondaryIndex::builder()
                .index_name(name)
                .key_schema(key(pk, KeyType::Hash).map_err(permanent)?)
                .key_schema(key(sk, KeyType::Range).map_err(permanent)?)
                .projection(Projection::builder().projection_type(ProjectionType::KeysOnly).build())
                .build()
                .map_err(permanent)
        };
        let mut request = self
            .client
            .create_table()
            .table_name(&self.table)
            .billing_mode(BillingMode::PayPerRequest)
            .key_schema(key("pk", KeyType::Hash).map_err(permanent)?)
            .key_schema(key("sk", KeyType::Range).map_err(permanent)?)
            .global_secondary_indexes(index("gsi1", "gsi1pk", "gsi1sk")?)
            .global_secondary_indexes(index("gsi2", "gsi2pk", "gsi2sk")?);
        for name in ["pk", "sk", "gsi1pk", "gsi1sk", "gsi2pk", "gsi2sk"] {
            request = request.attribute_definitions(attr(name).map_err(permanent)?);
        }
        request.send().await.map_err(classify)?;
        self.client
            .update_time_to_live()
            .table_name(&self.table)
            .time_to_live_specification(
                TimeToLiveSpecification::builder()
                    .attribute_name("expires_at")
                    .enabled(true)
                    .build()
                    .map_err(permanent)?,
            )
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }
}
