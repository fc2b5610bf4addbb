export * from './errors.ts';
export * from './attribute-value.ts';
export * from './schema.ts';
export * from './partition.ts';
export * from './catalog.ts';
