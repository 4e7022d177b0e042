// What a client sent never reaches a log or an error answer: graphql-js request errors quote the offending
// value (a variable's or a document literal's), and that value may be a password, a code or a token.
const NAME = /^[_A-Za-z][_0-9A-Za-z]*$/;

/**
 * A graphql-js request error's message without the client's values in it. graphql-js quotes the offending
 * value (`Variable "$i" got invalid value { password: "…" }`, `String cannot represent a non string value:
 * 123456`, `found "…"`, `Unexpected String "…"`): schema and operation names stay, values go.
 */
export function withoutValues(message: string): string {
  let out = message;
  // Coercion of a variable: the value comes first, then where (a path of schema field names), then why.
  out = out.replace(/^(Variable "\$[_A-Za-z][_0-9A-Za-z]*") got invalid value [\s\S]*$/, (whole, variable: string) => {
    const reason =
      /; ((?:String|Int|Float|Boolean|ID|Enum "[^"]*") cannot represent[\s\S]*|Field "[\s\S]*" is not defined by type "[^"]+"\.[\s\S]*|Field "[_A-Za-z][_0-9A-Za-z]*" of required type "[^"]+" was not provided\.|Expected type "[^"]+"[\s\S]*|Value "[\s\S]*" does not exist in "[^"]+" enum\.[\s\S]*)$/.exec(
        whole,
      );
    const at = / at "(\$?[_A-Za-z][_0-9A-Za-z]*(?:\.[_A-Za-z][_0-9A-Za-z]*|\[\d+\])*)"; /.exec(whole);
    return `${variable} got invalid value${at ? ` at "${at[1]}"` : ''}${reason ? `; ${withoutValues(reason[1] as string)}` : '.'}`;
  });
  // A literal in the document (validation) or a built-in scalar refusing a value: cut from the value on.
  out = out.replace(/^(Expected value of type "[^"]+"), found [\s\S]*$/, '$1.');
  out = out.replace(/\b(value|non-string and non-integer value): [\s\S]*$/, '$1.');
  out = out.replace(/^Value "[\s\S]*"( does not exist in "[^"]+" enum\.)/, 'Value$1');
  out = out.replace(/^Field "([\s\S]*)"( is not defined by type "[^"]+"\.)/, (_, field: string, rest: string) =>
    NAME.test(field) && field.length <= 64 ? `Field "${field}"${rest}` : `A field${rest}`,
  );
  // The lexer and parser quote the token they stopped at.
  if (out.startsWith('Syntax Error:')) {
    out = out
      .replace(/ (Name|String|BlockString|Int|Float) "[\s\S]*"(?=\.?$)/, ' $1')
      .replace(/: (?:"[\s\S]*"|U\+[0-9A-F]{4,6})(?=\.?$)/, '');
  }
  return out;
}

/** A library's error code (ECONNREFUSED, ETIMEDOUT, ER_ACCESS_DENIED_ERROR, SQLITE_BUSY): upper case and digits. */
const ERROR_CODE = /^[A-Z][A-Z0-9_]{1,63}$/;

/**
 * The `code` of a logged error, marked by the error serializer (log.ts) so that the censor lets it through: it says
 * what failed (ECONNREFUSED), it is not a secret. Written to the log as the plain string.
 */
export class ErrorCode {
  readonly value: string;
  constructor(value: string) {
    this.value = value;
  }
  toJSON(): string {
    return this.value;
  }
}

/** An error's `code` as the serializer keeps it: marked when it has an error code's shape, else as it was. */
export const errorCodeOf = (code: unknown): unknown =>
  typeof code === 'string' && ERROR_CODE.test(code) ? new ErrorCode(code) : code;

/**
 * pino's censor for the redacted paths (`*.code` among them): everything is `[redacted]` but an error's own code,
 * which only the error serializer marks; a verification code anywhere else stays redacted whatever it looks like.
 */
export function censor(value: unknown): unknown {
  return value instanceof ErrorCode ? value : '[redacted]';
}
