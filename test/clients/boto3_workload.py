"""A boto3 workload against a DynamoDB endpoint: python3 boto3_workload.py ENDPOINT_URL.

Uses boto3 as applications do (the client and the resource APIs, conditions, paginators, the batch
writer, waiters, modeled exceptions) and prints one JSON summary of what it observed on stdout, for
test/boto3.test.ts to check. It asserts nothing itself: a wrong answer shows up in the summary.
Run it with Debian's /usr/bin/python3, whose python3-boto3 package it needs. It signs with the access
key 'local' and secret 'local'.
"""

import base64
import json
import sys
from decimal import Decimal

import boto3
from boto3.dynamodb.conditions import Attr, Key
from boto3.dynamodb.types import Binary
from botocore.config import Config
from botocore.exceptions import ClientError

TABLE = 'Orders'
CUSTOMERS = ('c1', 'c2', 'c3')
ORDERS_PER_CUSTOMER = 20  # 60 items: the batch writer needs three BatchWriteItem calls
# Numbers at DynamoDB's limits that boto3 can read back: 38 significant digits, the smallest magnitude.
# DynamoDB answers larger magnitudes in plain notation (1E+100 as 1 and 100 zeros), which boto3's
# deserializer refuses with decimal.Rounded (boto/boto3#2500), so those go through the low-level client.
EXACT_NUMBERS = [
    Decimal('3.1415926535897932384626433832795028842'),
    Decimal('-0.000000000000000000000000000000000000012345'),
    Decimal('-99999999999999999999999999999999999999'),
    Decimal('1E-130'),
    Decimal('12345678901234567890123456789012345678'),
]


def observed(value):
    """JSON for what boto3 handed back, keeping the Python type visible."""
    if isinstance(value, Decimal):
        return {'Decimal': str(value)}
    if isinstance(value, bool) or value is None or isinstance(value, str):
        return value
    if isinstance(value, Binary):
        return {'Binary': base64.b64encode(value.value).decode('ascii')}
    if isinstance(value, (set, frozenset)):
        return {'set': sorted((observed(member) for member in value), key=json.dumps)}
    if isinstance(value, dict):
        return {name: observed(member) for name, member in value.items()}
    if isinstance(value, list):
        return [observed(member) for member in value]
    return {'unexpected type': type(value).__name__, 'repr': repr(value)}


def error_of(call):
    """The code, message and HTTP status of the ClientError that `call` raises, or None."""
    try:
        call()
    except ClientError as error:
        return {
            'code': error.response['Error']['Code'],
            'message': error.response['Error']['Message'],
            'status': error.response['ResponseMetadata']['HTTPStatusCode'],
        }
    return None


def order(customer, number):
    return {
        'customer': customer,
        'order_id': number,
        'status': 'open' if number % 2 == 0 else 'shipped',
        'total': Decimal(number) * Decimal('2.5'),
        'lines': [{'sku': f'sku-{number}', 'qty': number % 3 + 1}],
    }


def idempotent_transactions(client):
    """A retried TransactWriteItems with the same token applies once; other parameters under it fail."""
    visit = {
        'Update': {
            'TableName': TABLE,
            'Key': {'customer': {'S': 'c3'}, 'order_id': {'N': '1'}},
            'UpdateExpression': 'ADD visits :one',
            'ExpressionAttributeValues': {':one': {'N': '1'}},
        }
    }
    for _ in range(2):
        client.transact_write_items(TransactItems=[visit], ClientRequestToken='boto3-workload-visit')
    try:
        client.transact_write_items(
            TransactItems=[{'Delete': {'TableName': TABLE, 'Key': {'customer': {'S': 'c3'}, 'order_id': {'N': '1'}}}}],
            ClientRequestToken='boto3-workload-visit',
        )
        mismatch = 'succeeded'
    except client.exceptions.IdempotentParameterMismatchException as error:
        mismatch = type(error).__name__
    read = client.transact_get_items(
        TransactItems=[
            {'Get': {'TableName': TABLE, 'Key': {'customer': {'S': 'c3'}, 'order_id': {'N': '1'}}, 'ProjectionExpression': 'visits'}},
            {'Get': {'TableName': TABLE, 'Key': {'customer': {'S': 'c3'}, 'order_id': {'N': '999'}}}},
        ]
    )
    return {'responses': read['Responses'], 'mismatch': mismatch}


def parallel_scan(table):
    """Four segments of a scan: together every item, each exactly once."""
    segments = []
    for segment in range(4):
        keys, start = [], {}
        for _ in range(20):
            page = table.scan(Segment=segment, TotalSegments=4, Limit=10, ConsistentRead=True, **start)
            keys += [f"{item['customer']}/{item['order_id']}" for item in page['Items']]
            if 'LastEvaluatedKey' not in page:
                break
            start = {'ExclusiveStartKey': page['LastEvaluatedKey']}
        segments.append(keys)
    every = [key for keys in segments for key in keys]
    return {'items': len(every), 'distinct': len(set(every)), 'total': table.scan(Select='COUNT')['Count']}


def consumed_capacity(table):
    """Capacity units as DynamoDB counts them for a small item."""
    key = {'customer': 'c1', 'order_id': 7}
    return {
        'put': table.put_item(Item=order('c1', 7), ReturnConsumedCapacity='TOTAL')['ConsumedCapacity'],
        'get_eventual': table.get_item(Key=key, ReturnConsumedCapacity='TOTAL')['ConsumedCapacity'],
        'get_strong': table.get_item(Key=key, ConsistentRead=True, ReturnConsumedCapacity='TOTAL')['ConsumedCapacity'],
    }


def table_settings(client, table):
    """Time to live, tags, and ListTables paged one name at a time."""
    client.update_time_to_live(TableName=TABLE, TimeToLiveSpecification={'Enabled': True, 'AttributeName': 'expires'})
    ttl = client.describe_time_to_live(TableName=TABLE)['TimeToLiveDescription']
    client.tag_resource(ResourceArn=table.table_arn, Tags=[{'Key': 'team', 'Value': 'shoal'}])
    tags = client.list_tags_of_resource(ResourceArn=table.table_arn)['Tags']
    for name in ('Extra1', 'Extra2'):
        client.create_table(
            TableName=name,
            KeySchema=[{'AttributeName': 'id', 'KeyType': 'HASH'}],
            AttributeDefinitions=[{'AttributeName': 'id', 'AttributeType': 'S'}],
            BillingMode='PAY_PER_REQUEST',
        )
        client.get_waiter('table_exists').wait(TableName=name, WaiterConfig={'Delay': 1, 'MaxAttempts': 10})
    pages = list(client.get_paginator('list_tables').paginate(PaginationConfig={'PageSize': 1}))
    names = [name for page in pages for name in page['TableNames']]
    for name in ('Extra1', 'Extra2'):
        client.delete_table(TableName=name)
        client.get_waiter('table_not_exists').wait(TableName=name, WaiterConfig={'Delay': 1, 'MaxAttempts': 10})
    return {'ttl': ttl, 'tags': tags, 'list_tables_pages': len(pages), 'table_names': names}


def main(endpoint):
    session = boto3.session.Session(
        aws_access_key_id='local', aws_secret_access_key='local', region_name='us-east-1'
    )
    # One attempt per call, so a server error surfaces instead of being retried away.
    config = Config(retries={'total_max_attempts': 1}, connect_timeout=5, read_timeout=30)
    client = session.client('dynamodb', endpoint_url=endpoint, config=config)
    dynamodb = session.resource('dynamodb', endpoint_url=endpoint, config=config)
    summary = {'boto3': boto3.__version__}

    table = dynamodb.create_table(
        TableName=TABLE,
        KeySchema=[
            {'AttributeName': 'customer', 'KeyType': 'HASH'},
            {'AttributeName': 'order_id', 'KeyType': 'RANGE'},
        ],
        AttributeDefinitions=[
            {'AttributeName': 'customer', 'AttributeType': 'S'},
            {'AttributeName': 'order_id', 'AttributeType': 'N'},
            {'AttributeName': 'status', 'AttributeType': 'S'},
        ],
        GlobalSecondaryIndexes=[
            {
                'IndexName': 'by-status',
                'KeySchema': [
                    {'AttributeName': 'status', 'KeyType': 'HASH'},
                    {'AttributeName': 'order_id', 'KeyType': 'RANGE'},
                ],
                'Projection': {'ProjectionType': 'KEYS_ONLY'},
            }
        ],
        BillingMode='PAY_PER_REQUEST',
    )
    client.get_waiter('table_exists').wait(TableName=TABLE, WaiterConfig={'Delay': 1, 'MaxAttempts': 10})
    table.reload()
    summary['created'] = {
        'status': table.table_status,
        'keys': [element['AttributeName'] for element in table.key_schema],
        'indexes': [index['IndexName'] for index in table.global_secondary_indexes or []],
    }

    # Every attribute type through the resource's serializer and back.
    typed = {
        'customer': 'typed',
        'order_id': 1,
        'exact': EXACT_NUMBERS,
        'flag': True,
        'nothing': None,
        'blob': Binary(b'\x00\x01shoal\xff'),
        'names': {'ann', 'bob'},
        'scores': {Decimal('1.5'), Decimal('2')},
        'blobs': {Binary(b'a'), Binary(b'b')},
        'nested': {'list': [1, 'two', {'three': Decimal('3.0')}], 'empty_map': {}, 'empty_list': []},
    }
    table.put_item(Item=typed)
    got = table.get_item(Key={'customer': 'typed', 'order_id': 1}, ConsistentRead=True)['Item']
    summary['typed'] = {
        'item': observed(got),
        'exact_numbers_equal': got['exact'] == EXACT_NUMBERS,
        'order_id_is_decimal': isinstance(got['order_id'], Decimal),
    }
    low_level = client.get_item(
        TableName=TABLE,
        Key={'customer': {'S': 'typed'}, 'order_id': {'N': '1'}},
        ProjectionExpression='#n.#l[2], flag',
        ExpressionAttributeNames={'#n': 'nested', '#l': 'list'},
        ConsistentRead=True,
    )
    summary['projected_low_level'] = low_level['Item']
    client.put_item(TableName=TABLE, Item={'customer': {'S': 'typed'}, 'order_id': {'N': '2'}, 'huge': {'N': '1E+100'}})
    summary['huge_low_level'] = client.get_item(
        TableName=TABLE, Key={'customer': {'S': 'typed'}, 'order_id': {'N': '2'}}, ConsistentRead=True
    )['Item']['huge']
    # Not left for the resource API's reads below, which could not deserialize it.
    client.delete_item(TableName=TABLE, Key={'customer': {'S': 'typed'}, 'order_id': {'N': '2'}})

    with table.batch_writer(overwrite_by_pkeys=['customer', 'order_id']) as batch:
        for customer in CUSTOMERS:
            for number in range(ORDERS_PER_CUSTOMER):
                batch.put_item(Item=order(customer, number))
    summary['batch_count'] = table.scan(Select='COUNT', FilterExpression=Attr('customer').is_in(list(CUSTOMERS)), ConsistentRead=True)['Count']

    queried = table.query(
        KeyConditionExpression=Key('customer').eq('c2') & Key('order_id').between(5, 14),
        FilterExpression=Attr('status').eq('open') & Attr('total').gte(Decimal('15')),
        ScanIndexForward=False,
        ConsistentRead=True,
    )
    summary['query'] = {
        'order_ids': [int(item['order_id']) for item in queried['Items']],
        'count': queried['Count'],
        'scanned': queried['ScannedCount'],
        'first_total': observed(queried['Items'][0]['total']) if queried['Items'] else None,
    }
    summary['query_index'] = [
        observed(item)
        for item in table.query(
            IndexName='by-status',
            KeyConditionExpression=Key('status').eq('open') & Key('order_id').lt(3),
        )['Items']
    ]

    # The resource has no paginator: follow LastEvaluatedKey by hand, as applications do.
    pages, keys, start = 0, [], {}
    while pages < 20:
        page = table.query(KeyConditionExpression=Key('customer').eq('c1'), Limit=6, **start)
        pages += 1
        keys += [int(item['order_id']) for item in page['Items']]
        if 'LastEvaluatedKey' not in page:
            break
        start = {'ExclusiveStartKey': page['LastEvaluatedKey']}
    summary['query_pages'] = {'pages': pages, 'order_ids': keys}

    scan_pages = list(
        client.get_paginator('scan').paginate(
            TableName=TABLE,
            FilterExpression='#s = :open',
            ExpressionAttributeNames={'#s': 'status'},
            ExpressionAttributeValues={':open': {'S': 'open'}},
            PaginationConfig={'PageSize': 7},
        )
    )
    summary['scan_paginator'] = {
        'pages': len(scan_pages),
        'scanned_per_page': [page['ScannedCount'] for page in scan_pages],
        'count': sum(page['Count'] for page in scan_pages),
        'keys': sorted(f"{item['customer']['S']}/{item['order_id']['N']}" for page in scan_pages for item in page['Items']),
    }
    query_paginator = client.get_paginator('query')
    first = query_paginator.paginate(
        TableName=TABLE,
        KeyConditionExpression='customer = :c',
        ExpressionAttributeValues={':c': {'S': 'c3'}},
        PaginationConfig={'PageSize': 4, 'MaxItems': 9},
    ).build_full_result()
    rest = query_paginator.paginate(
        TableName=TABLE,
        KeyConditionExpression='customer = :c',
        ExpressionAttributeValues={':c': {'S': 'c3'}},
        PaginationConfig={'PageSize': 4, 'StartingToken': first['NextToken']},
    ).build_full_result()
    summary['query_resumed'] = {
        'first': [int(item['order_id']['N']) for item in first['Items']],
        'rest': [int(item['order_id']['N']) for item in rest['Items']],
        'rest_has_token': 'NextToken' in rest,
    }

    updated = table.update_item(
        Key={'customer': 'c1', 'order_id': 4},
        UpdateExpression='SET #s = :s, #t = #t + :inc, notes = list_append(if_not_exists(notes, :none), :note) '
        'REMOVE #lines ADD visits :one',
        ConditionExpression=Attr('status').eq('open') & Attr('total').lt(Decimal('100')),
        ExpressionAttributeNames={'#s': 'status', '#t': 'total', '#lines': 'lines'},
        ExpressionAttributeValues={
            ':s': 'paid',
            ':inc': Decimal('0.05'),
            ':none': [],
            ':note': ['first'],
            ':one': 1,
        },
        ReturnValues='ALL_NEW',
    )['Attributes']
    summary['update'] = observed(updated)

    try:
        table.put_item(Item=order('c1', 4), ConditionExpression=Attr('customer').not_exists())
        summary['conditional_put'] = 'succeeded'
    except table.meta.client.exceptions.ConditionalCheckFailedException as error:
        summary['conditional_put'] = {'caught': type(error).__name__, 'code': error.response['Error']['Code']}
    try:
        client.delete_item(
            TableName=TABLE,
            Key={'customer': {'S': 'c1'}, 'order_id': {'N': '5'}},
            ConditionExpression='attribute_not_exists(customer)',
        )
        summary['conditional_delete'] = 'succeeded'
    except client.exceptions.ConditionalCheckFailedException as error:
        summary['conditional_delete'] = {'caught': type(error).__name__, 'code': error.response['Error']['Code']}

    client.transact_write_items(
        TransactItems=[
            {'Put': {'TableName': TABLE, 'Item': {'customer': {'S': 'c9'}, 'order_id': {'N': '1'}, 'status': {'S': 'new'}}}},
            {
                'Update': {
                    'TableName': TABLE,
                    'Key': {'customer': {'S': 'c2'}, 'order_id': {'N': '2'}},
                    'UpdateExpression': 'SET #s = :s',
                    'ExpressionAttributeNames': {'#s': 'status'},
                    'ExpressionAttributeValues': {':s': {'S': 'cancelled'}},
                }
            },
            {'Delete': {'TableName': TABLE, 'Key': {'customer': {'S': 'c2'}, 'order_id': {'N': '3'}}}},
            {
                'ConditionCheck': {
                    'TableName': TABLE,
                    'Key': {'customer': {'S': 'c3'}, 'order_id': {'N': '0'}},
                    'ConditionExpression': 'attribute_exists(customer)',
                }
            },
        ],
        ClientRequestToken='boto3-workload-transaction-1',
    )
    after = dynamodb.batch_get_item(
        RequestItems={
            TABLE: {
                'Keys': [
                    {'customer': 'c9', 'order_id': 1},
                    {'customer': 'c2', 'order_id': 2},
                    {'customer': 'c2', 'order_id': 3},
                ],
                'ConsistentRead': True,
                'ProjectionExpression': 'customer, order_id, #s',
                'ExpressionAttributeNames': {'#s': 'status'},
            }
        }
    )
    summary['transaction'] = {
        'after': sorted((observed(item) for item in after['Responses'][TABLE]), key=json.dumps),
        'unprocessed': after['UnprocessedKeys'],
    }
    try:
        client.transact_write_items(
            TransactItems=[
                {'Put': {'TableName': TABLE, 'Item': {'customer': {'S': 'c9'}, 'order_id': {'N': '2'}}}},
                {
                    'ConditionCheck': {
                        'TableName': TABLE,
                        'Key': {'customer': {'S': 'c2'}, 'order_id': {'N': '3'}},
                        'ConditionExpression': 'attribute_exists(customer)',
                    }
                },
            ]
        )
        summary['cancelled_transaction'] = 'succeeded'
    except client.exceptions.TransactionCanceledException as error:
        summary['cancelled_transaction'] = {
            'caught': type(error).__name__,
            'reasons': [reason['Code'] for reason in error.response['CancellationReasons']],
            'message': error.response['Error']['Message'],
        }
    summary['cancelled_put_absent'] = 'Item' not in table.get_item(Key={'customer': 'c9', 'order_id': 2}, ConsistentRead=True)

    summary['idempotency'] = idempotent_transactions(client)
    summary['parallel_scan'] = parallel_scan(table)
    summary['capacity'] = consumed_capacity(table)
    summary['settings'] = table_settings(client, table)

    missing = dynamodb.Table('NoSuchTable')
    summary['errors'] = {
        'missing_table': error_of(lambda: missing.get_item(Key={'id': 'x'})),
        'key_missing_from_item': error_of(lambda: table.put_item(Item={'customer': 'c1'})),
        'wrong_key_type': error_of(lambda: table.get_item(Key={'customer': 'c1', 'order_id': 'not a number'})),
        'bad_update_expression': error_of(
            lambda: table.update_item(Key={'customer': 'c1', 'order_id': 1}, UpdateExpression='SET')
        ),
        'query_without_partition_key': error_of(
            lambda: table.query(KeyConditionExpression=Key('order_id').eq(1))
        ),
        'too_many_keys': error_of(
            lambda: dynamodb.batch_get_item(
                RequestItems={TABLE: {'Keys': [{'customer': 'c1', 'order_id': n} for n in range(101)]}}
            )
        ),
    }
    try:
        client.describe_table(TableName='NoSuchTable')
        summary['missing_table_by_class'] = 'described'
    except client.exceptions.ResourceNotFoundException as error:
        summary['missing_table_by_class'] = type(error).__name__

    table.delete()
    client.get_waiter('table_not_exists').wait(TableName=TABLE, WaiterConfig={'Delay': 1, 'MaxAttempts': 10})
    summary['tables_after_delete'] = client.list_tables()['TableNames']

    print(json.dumps(summary, sort_keys=True))


if __name__ == '__main__':
    if len(sys.argv) != 2:
        sys.exit('usage: boto3_workload.py ENDPOINT_URL')
    main(sys.argv[1])
