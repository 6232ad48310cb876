// The device table (docs/design.md §3) and, with the batched engine, its shard table (§11): built from
// lambdas/core/table-schema.ts, the one definition the local stack and the tests build from too.
import { RemovalPolicy } from 'aws-cdk-lib';
import * as dynamodb from 'aws-cdk-lib/aws-dynamodb';
import * as iam from 'aws-cdk-lib/aws-iam';
import { Construct } from 'constructs';
import { ENV } from '../lambdas/core/contracts.js';
import type { BatchedSizing } from '../lambdas/core/sizing.js';
import {
  DEADLINE_INDEX,
  KEY,
  OFFLINE_INDEX,
  OUTBOX_INDEX,
  SHARD_TABLE,
  TTL_ATTRIBUTE,
} from '../lambdas/core/table-schema.js';

/** The device table's indexes. */
export type IndexName = typeof DEADLINE_INDEX.name | typeof OUTBOX_INDEX.name | typeof OFFLINE_INDEX.name;

/** Pre-warmed throughput of the device table and of each index by name. */
export interface DeviceTableWarmThroughput {
  readonly table?: dynamodb.WarmThroughput;
  readonly indexes?: { readonly [index in IndexName]?: dynamodb.WarmThroughput };
}

export interface DeviceTablesProps {
  /** Shards of the deadline and offline indexes. */
  readonly indexShards: number;
  /** Batched engine: its shards; the shard table exists only then. */
  readonly batched?: BatchedSizing;
  /** Of the device table. @default on-demand */
  readonly billing?: dynamodb.Billing;
  /** @default the AWS managed key (aws/dynamodb) */
  readonly encryption?: dynamodb.TableEncryptionV2;
  readonly warmThroughput?: DeviceTableWarmThroughput;
  readonly removalPolicy: RemovalPolicy;
}

export class DeviceTables extends Construct {
  readonly table: dynamodb.TableV2;
  /** Batched engine: the shards' logs and states. */
  readonly shardTable?: dynamodb.TableV2;
  /** What every handler reads to find the tables and their layout. */
  readonly environment: Readonly<Record<string, string>>;

  constructor(scope: Construct, id: string, props: DeviceTablesProps) {
    super(scope, id);
    this.table = this.createDeviceTable(props);
    this.shardTable = props.batched ? this.createShardTable(props) : undefined;
    this.environment = {
      [ENV.tableName]: this.table.tableName,
      [ENV.shardCount]: String(props.indexShards),
      ...(this.shardTable && props.batched
        ? {
            [ENV.engine]: 'batched',
            [ENV.shardTableName]: this.shardTable.tableName,
            [ENV.batchedShardCount]: String(props.batched.shardCount),
          }
        : {}),
    };
  }

  /** Item-level actions on the device table itself; index access is granted per index (grantIndexQuery). */
  grantItems(
    grantee: iam.IGrantable,
    actions: readonly string[],
    conditions?: Record<string, Record<string, unknown>>,
  ): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: [...actions],
      resourceArns: [this.table.tableArn],
      ...(conditions ? { conditions } : {}),
    });
    // With a customer key, DynamoDB decrypts the table key on the caller's behalf (kms:ViaService): name the actions
    // rather than grantEncryptDecrypt, whose ReEncrypt* nobody here needs.
    this.table.encryptionKey?.grant(grantee, 'kms:Decrypt', 'kms:Encrypt', 'kms:GenerateDataKey', 'kms:DescribeKey');
  }

  /** Batched engine: item actions on the shard table (nothing on the per-device engine). */
  grantShardItems(grantee: iam.IGrantable, actions: readonly string[]): void {
    if (!this.shardTable) return;
    iam.Grant.addToPrincipal({ grantee, actions: [...actions], resourceArns: [this.shardTable.tableArn] });
    this.shardTable.encryptionKey?.grant(
      grantee,
      'kms:Decrypt',
      'kms:Encrypt',
      'kms:GenerateDataKey',
      'kms:DescribeKey',
    );
  }

  /** Query on the named indexes only. */
  grantIndexQuery(grantee: iam.IGrantable, indexes: readonly IndexName[]): void {
    iam.Grant.addToPrincipal({
      grantee,
      actions: ['dynamodb:Query'],
      resourceArns: indexes.map((index) => `${this.table.tableArn}/index/${index}`),
    });
  }

  /** SSE with the AWS managed key by default: encrypted at rest with key use logged in CloudTrail, no key policy to
   * maintain and no kms grants for the Lambdas; a customer key where policy demands one (the grants include it). */
  private createDeviceTable(props: DeviceTablesProps): dynamodb.TableV2 {
    const warm = (index: IndexName) => {
      const warmThroughput = props.warmThroughput?.indexes?.[index];
      return warmThroughput ? { warmThroughput } : {};
    };
    return new dynamodb.TableV2(this, 'Table', {
      partitionKey: { name: KEY, type: dynamodb.AttributeType.STRING },
      billing: props.billing ?? dynamodb.Billing.onDemand(),
      encryption: props.encryption ?? dynamodb.TableEncryptionV2.awsManagedKey(),
      pointInTimeRecoverySpecification: { pointInTimeRecoveryEnabled: true },
      timeToLiveAttribute: TTL_ATTRIBUTE,
      deletionProtection: props.removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy: props.removalPolicy,
      ...(props.warmThroughput?.table ? { warmThroughput: props.warmThroughput.table } : {}),
      globalSecondaryIndexes: [
        {
          // Sparse and sharded: only online devices carry `shard`/`deadline`; the projection holds only what
          // changes together with the keys, so a heartbeat that moves only `lastSeen` costs the index nothing.
          indexName: DEADLINE_INDEX.name,
          partitionKey: { name: DEADLINE_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
          sortKey: { name: DEADLINE_INDEX.sortKey, type: dynamodb.AttributeType.NUMBER },
          projectionType: dynamodb.ProjectionType.INCLUDE,
          nonKeyAttributes: [...DEADLINE_INDEX.projected],
          ...warm(DEADLINE_INDEX.name),
        },
        {
          indexName: OUTBOX_INDEX.name,
          partitionKey: { name: OUTBOX_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
          sortKey: { name: OUTBOX_INDEX.sortKey, type: dynamodb.AttributeType.NUMBER },
          projectionType: dynamodb.ProjectionType.KEYS_ONLY,
          ...warm(OUTBOX_INDEX.name),
        },
        {
          // Sparse and sharded like the deadline index: only OFFLINE devices carry its keys (set and removed by the
          // transition's own write), partitioned by type and shard, newest first (the operator API lists it).
          indexName: OFFLINE_INDEX.name,
          partitionKey: { name: OFFLINE_INDEX.partitionKey, type: dynamodb.AttributeType.STRING },
          sortKey: { name: OFFLINE_INDEX.sortKey, type: dynamodb.AttributeType.STRING },
          projectionType: dynamodb.ProjectionType.INCLUDE,
          nonKeyAttributes: [...OFFLINE_INDEX.projected],
          ...warm(OFFLINE_INDEX.name),
        },
      ],
    });
  }

  /** Derived data (rebuilt from the device items and the log if lost), so no PITR; encrypted like the device table.
   * TTL deletes for free, and nothing here is ever deleted by a request. */
  private createShardTable(props: DeviceTablesProps): dynamodb.TableV2 {
    return new dynamodb.TableV2(this, 'ShardTable', {
      partitionKey: { name: SHARD_TABLE.partitionKey, type: dynamodb.AttributeType.STRING },
      sortKey: { name: SHARD_TABLE.sortKey, type: dynamodb.AttributeType.STRING },
      billing: dynamodb.Billing.onDemand(),
      encryption: props.encryption ?? dynamodb.TableEncryptionV2.awsManagedKey(),
      timeToLiveAttribute: SHARD_TABLE.ttl,
      deletionProtection: props.removalPolicy === RemovalPolicy.RETAIN,
      removalPolicy: props.removalPolicy,
    });
  }
}
