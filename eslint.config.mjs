// ESLint flat config: typescript-eslint's recommended rules, formatting left to prettier.
import tseslint from 'typescript-eslint';
import prettier from 'eslint-config-prettier';

export default tseslint.config(
  { ignores: ['lib/**', 'node_modules/**', 'python_ext/**', 'ui-tests/**', '*.js', '*.mjs'] },
  ...tseslint.configs.recommended,
  prettier,
  {
    files: ['src/**/*.ts'],
    rules: {
      '@typescript-eslint/naming-convention': [
        'error',
        {
          selector: 'interface',
          format: ['PascalCase'],
          custom: { regex: '^I[A-Z]', match: true }
        }
      ],
      '@typescript-eslint/no-explicit-any': 'off',
      '@typescript-eslint/no-namespace': 'off',
      '@typescript-eslint/no-unused-vars': ['warn', { args: 'none' }],
      curly: ['error', 'all'],
      eqeqeq: 'error',
      'prefer-arrow-callback': 'error',
      // No function over 80 lines (blank lines and comments count): split it into named steps.
      'max-lines-per-function': ['error', { max: 80 }]
    }
  },
  {
    // Tests read best as one describe block per behaviour.
    files: ['src/__tests__/**/*.ts'],
    rules: { 'max-lines-per-function': 'off' }
  }
);
