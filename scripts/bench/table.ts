/** A plain text table: left-aligned first columns, right-aligned numbers. */
export function formatTable(headers: string[], rows: string[][]): string {
  const widths = headers.map((header, column) => Math.max(header.length, ...rows.map((row) => row[column].length)));
  const isNumeric = headers.map((_, column) => rows.length > 0 && rows.every((row) => /^[-\d.]+$/.test(row[column])));
  const line = (cells: string[]): string =>
    cells.map((cell, column) => (isNumeric[column] ? cell.padStart(widths[column]) : cell.padEnd(widths[column]))).join('  ').trimEnd();
  return [line(headers), widths.map((width) => '-'.repeat(width)).join('  '), ...rows.map(line)].join('\n');
}
