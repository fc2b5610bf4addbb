/** Amazon Resource Names of Shoal tables: one fixed account, as DynamoDB Local uses. */

export const ACCOUNT_ID = '000000000000';

export function tableArn(region: string, tableName: string): string {
  return `arn:aws:dynamodb:${region}:${ACCOUNT_ID}:table/${tableName}`;
}
