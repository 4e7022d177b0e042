// Validation errors reach the client without passing Yoga's error mask: answer them, too, without the
// document literals graphql-js quotes in them (`String cannot represent a non string value: <literal>`).
import type { Plugin } from 'graphql-yoga';
import { withoutQuotedValues } from '../schema/errors.ts';

export function useRequestErrors(): Plugin {
  return {
    onValidate() {
      return ({ result, setResult }) => {
        if (result.length > 0) setResult(result.map((error) => withoutQuotedValues(error)));
      };
    },
  };
}
